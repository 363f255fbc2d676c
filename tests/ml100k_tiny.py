"""A made-up MovieLens-100k look-alike for the parser tests, written to a temporary folder by :func:`write_tiny_copy`.

The MovieLens licence forbids redistributing the data, so the repository holds **no MovieLens files**: these 12 users,
20 films (titles, dates, genres) and 60 ratings are invented, and they exist only as text in this module. The files
follow the ml-100k layout so that ``recbook.data.read_movielens_100k_folder`` can parse them:

- ``u.data``: ``user id \\t item id \\t rating \\t timestamp``, ASCII, **not** in time order, like the real file; each
  user has 5 ratings.
- ``u.item``: ``item id | title | release date | video release date | IMDb URL | 19 genre flags`` (unknown, Action, …,
  Western), written **latin-1**: item 3 has ``â`` and item 18 has ``ñ``, one byte each (so the file is not valid
  UTF-8). Item 20 has no year in its title, no release date and only the ``unknown`` genre flag.
- ``u.user``: ``user id | age | gender | occupation | zip code``; one zip code has letters, two start with 0.

The parser checks the real file's counts (100,000 ratings, 943 users, 1,682 items), so this copy is rejected as-is;
tests/unit/data/test_movielens.py patches the expected counts (``COUNTS``) to parse it. Edit the rows and the numbers the
tests check together.
"""

from pathlib import Path

COUNTS = {"ratings": 60, "users": 12, "items": 20}

U_DATA = """\
8	13	1	882982900
9	5	1	884510223
6	14	1	881053257
7	4	4	882210471
2	3	5	877345464
8	14	3	882923205
7	8	2	882187524
9	13	5	883710040
2	18	1	877381648
4	14	1	879581029
2	13	1	877474809
3	7	2	878186470
11	13	2	885899020
5	3	1	879717710
5	18	4	880587707
11	5	2	886340097
8	4	2	883141194
1	15	5	875893630
9	2	4	884162990
6	13	3	880791377
6	7	1	881516327
7	2	2	882535737
4	3	2	878966332
5	4	2	880005033
12	2	5	886967574
5	19	2	879770072
3	2	2	878042143
11	10	4	886460627
10	8	5	885330491
9	4	3	883970823
11	6	5	885961618
2	5	2	877174999
11	8	4	886557527
5	13	1	880105288
12	4	4	887237244
12	14	4	886949988
1	20	1	876236775
1	19	4	876360479
4	1	3	878787245
6	3	4	881407693
6	20	3	880982880
12	3	3	886814344
10	7	4	885175223
1	18	2	876198873
10	3	2	885086583
3	8	3	878319665
4	15	5	879278046
12	20	4	886740576
10	1	2	885352370
8	18	2	883542438
9	19	3	883923601
8	5	5	882700493
7	5	5	881886309
3	1	4	878515905
2	2	5	877385687
1	7	3	876542950
10	20	5	885089759
3	20	5	878161930
7	1	5	882415210
4	9	3	879442192
"""

U_ITEM = """\
1|Harbor Lights (1995)|01-Jan-1995||http://example.org/film/1|0|0|0|0|0|0|0|0|1|0|0|0|0|0|1|0|0|0|0
2|Copper Canyon Run (1994)|01-Jan-1994||http://example.org/film/2|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1
3|Le Pâtissier Fou (1996)|14-Feb-1996||http://example.org/film/3|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0
4|Orbit of Small Things (1997)|01-Jan-1997||http://example.org/film/4|0|0|0|1|1|0|0|0|0|0|0|0|0|0|0|1|0|0|0
5|The Quiet Ledger (1993)|01-Jan-1993||http://example.org/film/5|0|0|0|0|0|0|1|0|0|0|1|0|0|1|0|0|0|0|0
6|Marsh Birds (1995)|01-Jan-1995||http://example.org/film/6|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0
7|Night Bus to Nowhere (1996)|05-Jul-1996||http://example.org/film/7|0|0|0|0|0|0|0|0|0|0|0|1|0|0|0|0|1|0|0
8|Sing Me the Weather (1992)|01-Jan-1992||http://example.org/film/8|0|0|0|0|0|1|0|0|0|0|0|0|1|0|0|0|0|0|0
9|Trench Letters (1994)|01-Jan-1994||http://example.org/film/9|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|1|0
10|Glass Dragon (1997)|21-Mar-1997||http://example.org/film/10|0|0|1|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0
11|Paper Astronauts (1995)|01-Jan-1995||http://example.org/film/11|0|0|0|0|1|1|0|0|0|0|0|0|0|0|0|1|0|0|0
12|Salt and Cinders (1996)|01-Jan-1996||http://example.org/film/12|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0
13|The Ninth Locksmith (1994)|01-Jan-1994||http://example.org/film/13|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|1|0|0
14|Tumbleweed Sonata (1993)|01-Jan-1993||http://example.org/film/14|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0|0|0|0|1
15|Lanterns Over Lyon (1997)|09-May-1997||http://example.org/film/15|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0|0|0
16|Deep Field (1996)|01-Jan-1996||http://example.org/film/16|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|1|0|0|0
17|Rooftop Rivals (1995)|01-Jan-1995||http://example.org/film/17|0|1|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0
18|Señora Tempest (1998)|16-Jan-1998||http://example.org/film/18|0|0|0|0|0|0|0|0|1|0|0|0|0|1|0|0|0|0|0
19|Winter Orchard (1994)|01-Jan-1994||http://example.org/film/19|0|0|0|0|1|0|0|0|1|0|0|0|0|0|0|0|0|0|0
20|The Lost Reel||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0
"""

U_USER = """\
1|24|M|technician|85711
2|53|F|other|94043
3|23|M|writer|32067
4|24|M|technician|43537
5|33|F|other|15213
6|42|M|executive|98101
7|57|M|administrator|91344
8|36|M|administrator|05201
9|29|M|student|01002
10|53|M|lawyer|90703
11|39|F|other|30329
12|28|F|programmer|V3N4P
"""

FILES = {"u.data": (U_DATA, "ascii"), "u.item": (U_ITEM, "latin-1"), "u.user": (U_USER, "ascii")}


def write_tiny_copy(folder) -> Path:
    """Write u.data, u.item and u.user (in their encodings) into ``folder`` and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, (text, encoding) in FILES.items():
        (folder / name).write_bytes(text.encode(encoding))
    return folder
