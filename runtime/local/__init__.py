"""The local platform: the same runtime on one machine, with local stand-ins for AWS."""
