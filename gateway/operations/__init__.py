"""Operations: backup and restore, retention purges, Prometheus metrics, a local Orthanc for
development."""
