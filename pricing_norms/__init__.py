"""Cost norm catalogue, study costing and billing reports."""
