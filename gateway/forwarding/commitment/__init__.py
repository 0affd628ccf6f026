"""Storage Commitment (Push Model): requests recorded from N-ACTION, decided per instance
once it is verified in every destination, reported back with N-EVENT-REPORT.

``models``: the request and item tables; ``record``: storing an N-ACTION request with its
job; ``process``: the ``commitment`` job handler (decide, then report).
"""
