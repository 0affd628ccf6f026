"""Every ORM model module, imported so ``Base.metadata`` knows all tables (migrations)."""

from gateway.auth import models as auth_models  # noqa: F401
from gateway.core import audit as audit_models  # noqa: F401
from gateway.core.models import Base
from gateway.costing import models as costing_models  # noqa: F401
from gateway.forwarding.commitment import models as commitment_models  # noqa: F401
from gateway.intake import thumbnails as thumbnail_models  # noqa: F401
from gateway.orders import models as order_models  # noqa: F401
from gateway.reconciliation import models as reconciliation_models  # noqa: F401

__all__ = ["Base"]
