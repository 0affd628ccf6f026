"""HL7 v2 wire format: MLLP framing, parsing, message building. No database access."""
