"""Shipped as the resource package ``notifier.templates`` (see pyproject.toml).

Read through ``notifier.resources``; a deployer's own directory
(``[notification] email_template_dir``) overrides the e-mail templates.
"""
