"""Local-test settings overlay for BottleCRM (django-crm 1.35.0), copied next to its venv by bottlecrm_up.sh.

No Redis: Celery runs tasks eagerly (webhook deliveries happen inline, in the request that caused them).
Webhook targets on loopback are allowed (test only) so a receiver on 127.0.0.1 gets real signed deliveries.
"""

import ipaddress

import webhooks.ssrf as _ssrf
from crm.settings import *  # noqa: F403

CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False

_orig_is_blocked = _ssrf.is_blocked


def _is_blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return False if ip.is_loopback else _orig_is_blocked(ip)


class _AnyPort:
    """Every port is allowed (the tests' receiver listens on a free port chosen at run time)."""

    def __contains__(self, port: object) -> bool:
        return True


_ssrf.is_blocked = _is_blocked
_ssrf._allowed_ports = _AnyPort
