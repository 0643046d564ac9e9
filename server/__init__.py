"""NEXUS virtual interview server: app factory, settings, auth, store and views."""
