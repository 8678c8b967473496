"""``adaptkit sweep``: search recipe keys for the most style within a fidelity budget.

``space`` reads the space file, ``folder`` names the sweep folder's files and holds the trial locks,
``trial`` runs and judges one trial (an ordinary run), ``study`` is the Optuna study and one
worker's loop, ``workers`` starts a sweep with one or more workers, ``report`` writes what it found.
"""
