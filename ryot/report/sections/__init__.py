"""The report's page sections: one module per section builds its part of the template's context,
already formatted, and templates/section_<name>.html.j2 lays it out. context.build_context
assembles them in the page's order."""
