"""Cost norm catalogue, study costing and billing reports (pure: no database access).

Modules: ``catalogue`` (dataclasses + validated Catalogue), ``catalogue_io`` (CSV/XLSX
import/export), ``example`` (bundled ILLUSTRATIVE catalogue), ``mapping`` (study ->
service / machine), ``costing`` (cost_study -> CostRecord), ``reports`` (flat rows,
aggregation), ``claims`` (XML3/XML2 rows), ``exporters`` (streaming CSV/XLSX/XML),
``money`` (the rounding rule).
"""
