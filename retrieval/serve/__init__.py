"""`mre serve`: a local web page over a store — search by words, listen, see the library as a map.

app.py holds the routes and the guard (read-only, local, by id), live.py the Library that
follows the store's CURRENT generation, map.py the 2-D projection, server.py the listening
socket and uvicorn, static/ the page (one HTML, one JS, one CSS file; no build step).
"""
