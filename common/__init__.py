"""What both the engine (cti/) and the ACD (acd/) need: the call changes, the
switch vocabulary (dialplan contexts, AMI actions), retry backoff and the
database migrations. Imports nothing from cti/, acd/ or any feature."""
