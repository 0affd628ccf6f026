"""Results to the EMR: ORU^R01 with a viewer link once a matched study is verified."""
