"""Offline dataset collection: behaviour policies of graded safety, perturbed rollouts, a (cost, reward)
grid filter, and the pipeline behind `pls collect`."""
