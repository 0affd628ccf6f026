"""Orders and patients from HL7, served as Modality Worklist and updated by MPPS.

``models`` holds the tables, ``persist`` applies interpreted HL7 messages, ``worklist``
answers MWL queries, ``mpps`` records performed procedure steps.
"""
