"""The inspector's screens: the two panes, the header inventory, help, writing the view."""
