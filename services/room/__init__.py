"""The room client: joins a room on the room server and carries the appliance's media."""
