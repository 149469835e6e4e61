"""Call control from the agent desktop: hold, transfers, consultations,
three-way calls, all performed with AMI actions on the call's channels."""
