"""No models: this app only adds policies to the other apps' tables (and needs this module
so that Django sends it ``post_migrate``)."""
