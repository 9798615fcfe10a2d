"""Scenario generator: a month of customers' events with the flags they must raise."""

from services.simulate.people import Person
from services.simulate.scenario import ExpectedFlag, Scenario, generate, load

__all__ = ["ExpectedFlag", "Person", "Scenario", "generate", "load"]
