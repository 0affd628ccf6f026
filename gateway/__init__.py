"""Service core: settings, database, instance store, pipeline, PACS client, API, CLI."""
