"""The offline demo: workload generator, demo config and the demo runner."""
