"""The simulated chain: published contract builds from npm, deployed on an EVM backend."""
