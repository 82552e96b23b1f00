"""A local Salesforce org: ``sandbox.SalesforceState`` / ``sandbox.build_app`` (``schema``, ``store``,
``checks``, ``relations`` for cascade deletes and roll-up summaries, ``soql``, ``routes``, ``rows``);
``seed`` fills it with client firms, their buyers and services deals."""
