"""eventkit: an event-sourcing analytics workbench."""
