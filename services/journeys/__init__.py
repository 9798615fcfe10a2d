"""Journeys: maps of stages and friction rules (:mod:`~services.journeys.maps`), read from
``journey_maps/*.yaml`` by :mod:`~services.journeys.loader`, and the engine that follows each
customer through them."""
