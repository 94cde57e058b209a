"""The deploy-stack wizard, one module per page; `DeployWizard` puts them together."""

from desktop.views.wizard.context import WizardContext
from desktop.views.wizard.wizard import DeployWizard

__all__ = ["DeployWizard", "WizardContext"]
