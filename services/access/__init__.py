"""Who may read and work the API: users with roles, their login tokens, and static tokens."""
