"""Views: everything tuner shows, at the edge. Engines return data; one module per kind of view turns it into
text (Terraform's command/views), and nothing here calls back into the engines.

  terminal    terminal_safe (every text output's last step), colour only on a terminal without NO_COLOR,
              rich tables at their natural width
  plan        a plan as text: `+ name (provider) will be created`, `field = old -> new  # forces replacement`
  markdown    a plan as a pull-request comment, every user text escaped
  json_view   what scripts read: plan, state list, validate, eval and output documents
  state       the state list, one model's record, outputs, what a refresh found
  metrics     an evaluation beside another model's
  cost        the break-even table and chart
  progress    apply's progress: a live table on a terminal, one line per transition elsewhere
  outcome     what a command did: results, warnings, errors
"""
