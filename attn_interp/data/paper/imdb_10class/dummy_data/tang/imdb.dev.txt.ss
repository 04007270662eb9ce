u0		tt000		1		a service music the game . <sssss> food price service team price doctor team book . <sssss> actor the movie the vote code movie . <sssss> a money vote doctor phone music actor money .
u1		tt001		8		price team music . <sssss> song code love .
u2		tt002		5		doctor movie vote ! <sssss> food movie love staff food movie plot screen ! <sssss> phone service game doctor school ! <sssss> the movie movie a .
