"""Serial UHF modules (M100 / JRD-4035 / YRM100 family): codec, transport and driver."""
