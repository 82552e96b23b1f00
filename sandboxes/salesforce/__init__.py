"""A local Salesforce org: ``sandbox.SalesforceState`` / ``sandbox.build_app`` (``schema``, ``store``,
``checks``, ``relations`` for cascade deletes and roll-up summaries, ``soql``, ``routes``, ``rows``);
``seed`` fills it with client firms, their buyers and services deals.

Follows ``shared/reference/api-wire-formats.md`` §1 (endpoints §1.3 including ``/limits``,
``/sobjects`` and ``/sobjects/{name}/describe``, query and paging §1.4, writes §1.6, errors and limits
§1.7, objects §1.8). Writes are as strict as Salesforce: a field describe lists as not createable (not
updateable) is refused, all of them in one ``INVALID_FIELD_FOR_INSERT_UPDATE``, so a whole GET body is
not a valid write; a name the object lacks is ``INVALID_FIELD`` (checked first). Left out: field-level
security and profiles, master-detail reparenting rules (describe reports master-detail fields
updateable), record types, and describe's layouts, URLs and most field metadata."""
