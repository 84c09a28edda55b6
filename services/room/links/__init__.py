"""Links between rooms on different Janus servers.

A link joins a room on this box's server with a room on another server, so the members
of each see and hear the other's. The VideoRoom does the forwarding itself (its remote
publishers, Janus 1.1.0 and later): this package only tells both servers what to forward
and keeps that true while members come and go and while servers restart. See
docs/links.md.
"""
