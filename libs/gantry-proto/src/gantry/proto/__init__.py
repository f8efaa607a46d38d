"""Generated protobuf/gRPC stubs for the Gantry v1 contracts (do not edit; run scripts/gen_protos.py)."""
