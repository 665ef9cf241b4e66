"""Sportello: an integration hub for Italian comuni (SPID/CIE, pagoPA, App IO, ANPR via PDND).

The import root ``sportello`` is the ``hub/`` folder of the repository; the platform
connectors, legacy adapters and sandboxes live under ``sportello.connectors``,
``sportello.adapters`` and ``sportello.sandbox`` (see ``pyproject.toml``).
"""

__version__ = "0.1.0"
