"""Reports for CX managers, read from the CRM store's pre-aggregated tables."""
