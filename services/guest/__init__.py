"""Guests in the box's room from any browser: signed, expiring, revocable guest links
(:mod:`services.guest.links`) and the signalling allow-list of the page's room proxy
(:mod:`services.guest.policy`)."""
