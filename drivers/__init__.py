"""Device drivers: LLRP readers, serial UHF modules and cameras.

Drivers know nothing of the gateway. Each turns a device's bytes into typed observations
(:class:`drivers.base.TagRead`) and reports its health.
"""
