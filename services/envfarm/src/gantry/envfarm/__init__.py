"""envfarm: VisGym environments, their solvers, and the gRPC farm that serves sessions."""
