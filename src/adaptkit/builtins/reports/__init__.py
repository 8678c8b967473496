"""Built-in end-of-run reports, attached through the lifecycle hooks like any plugin's."""
