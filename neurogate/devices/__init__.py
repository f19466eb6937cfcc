"""Device adapters: turn a source (BrainFlow board, LSL outlet, file, vendor client) into
frames for the gateway. Adapters never decide anything about consent."""

__all__: list[str] = []
