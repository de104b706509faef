"""Configuration as code: rules, channels, policies, sources and checks as one YAML file."""
