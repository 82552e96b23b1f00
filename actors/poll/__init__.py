"""Reading a system: the poller, what one page of changes produces (``page``), non-owner edits and the
suspects that wait for judgement (``edits``, ``suspects``)."""
