"""edgecount: unattended warehouse inventory counting.

This package holds what every part shares: the command line and the MQTT message contract.
The gateway, drivers, simulators and models live in their own top-level packages.
"""

__version__ = "0.1.0"
