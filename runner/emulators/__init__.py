"""Loopback emulators of the cloud tuning services the providers talk to."""
