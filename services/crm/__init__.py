"""The CRM relationship store: its sink, the Customer 360 view and the friction workflow."""
