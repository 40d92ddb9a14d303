"""Models arrive with their issues; the app is registered so migrations stay linear."""
