"""Access control lists: the rule model, the two rule-file syntaxes, and the
``acl-file`` authorizer."""
