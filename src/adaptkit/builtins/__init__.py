"""adaptkit's built-in components, registered through the same hooks third-party plugins use."""
