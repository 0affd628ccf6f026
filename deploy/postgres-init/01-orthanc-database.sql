-- Orthanc keeps its index in its own database, beside the gateway's.
CREATE DATABASE orthanc OWNER risgate;
