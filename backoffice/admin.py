"""Back office views for the fleet: organisations with usage and limits, suspension
and scheduled deletion, failing jobs with re-run, and the platform's health."""
