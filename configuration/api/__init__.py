"""The configuration API under `/api/v1/config/`: apply a file, export one, and edit
rules, channels, policies, sources, health checks and recovery actions one at a time."""
