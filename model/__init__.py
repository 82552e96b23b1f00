"""The canonical model: the entities Accord syncs, their fields and references (``entities``)."""
