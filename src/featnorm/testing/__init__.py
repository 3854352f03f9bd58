"""Test and benchmark support: fixtures that featnorm itself never uses at run time."""
