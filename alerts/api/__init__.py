"""The operator alerts API (people, not sources): alerts, acknowledgements, silences."""
