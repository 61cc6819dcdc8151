//! A gazetteer of given names from many languages, lower case. Surnames are not listed: a
//! capitalised word after a given name, or after a title or a cue ("my name is"), is taken as
//! one.

/// Given names, space separated.
pub(crate) const GIVEN_NAMES: &str = "\
aaron abdul abdullah abigail abraham ada adam adeline adrian adriana agnes ahmed ahmad aidan aiden aisha alan albert alberto \
alejandra alejandro aleksandr aleksandra alex alexa alexander alexandra alexandre alexis alfred alfredo ali alice alicia alina \
alison allison alma amanda amber amelia amina amir amit amy ana anastasia anders andre andrea andreas andrei andres andrew \
andrzej angel angela angelica angelo anita ann anna anne annette annie anthony antoine anton antonio anya arjun arnav arne \
arthur arturo ashley astrid aurora austin ava axel ayesha barbara barry beatriz beatrice becky ben benjamin bernard bernardo \
beth bethany betty beverly bianca bill billy birgit bjorn blake bob bobby bogdan bonnie boris brad bradley brandon brenda \
brett brian bridget brittany bruce bruno bryan caitlin caleb camila cameron camille carl carla carlos carmen carol caroline \
carolyn carrie casey catherine cecilia celia chad charles charlie charlotte chelsea cheryl chloe chris christian christina \
christine christopher cindy claire clara clarence claudia clement colin connor conrad constance craig cristina crystal \
cynthia dale dalia damian dan dana daniel daniela daniele danielle danny darius darren dave david dawn dean deborah debra \
denis denise dennis derek diana diane diego dimitri dmitri dmitry dolores dominic dominik donald donna doris dorothy doug \
douglas duncan dustin dylan earl ed eddie edgar edith edward edwin eileen elaine eleanor elena eli elias elif elijah elisa \
elisabeth eliza elizabeth ella ellen elliot elsa emil emilia emilie emily emma emmanuel enrique eric erica erik erika erin \
ernest ernesto esther ethan eugene eva evan evelyn fabian fabio fatima federico felipe felix fernanda fernando filip fiona \
florian frances francesca francesco francis francisco frank franz fred frederick frida gabriel gabriela gabriele gabrielle \
gail gareth gary gavin gemma geoffrey george georgia gerald gerard gerhard gina giorgio giovanni giulia giuseppe gloria \
gordon grace graham grant greg gregory greta guadalupe guillermo gunnar gustavo hailey haley hamza hank hannah hans harold \
harriet harry harvey hassan heather hector heidi helen helena helga henrik henry herbert hermann hilda holly howard hugo \
hussein ian igor ilya imran ines ingrid irene iris isaac isabel isabella isabelle ismail ivan jack jackson jacob jacqueline \
jake james jamie jan jane janet janice jared jasmine jason javier jay jean jeff jeffrey jenna jennifer jenny jeremy jerome \
jerry jesse jessica jesus jill jim jimmy joan joanna joanne joao joaquin joe joel johan johann johanna john johnny jon \
jonas jonathan jordan jorge jose josef joseph josephine josh joshua joy joyce juan juana judith judy julia julian juliana \
julie julien julio june jurgen justin kai kamal karen karim karin karina karl kate katherine kathleen kathryn kathy katie \
katarzyna kay keith kelly ken kenneth kenji kevin khalid kim kimberly kirk klaus kristen kristina kristoffer krzysztof \
kumar kurt kyle lana lara larry laura lauren laurence lawrence leah lee leila lena leo leon leonardo leslie lewis liam lily \
linda lindsay lisa liu logan lois lorenzo lori louis louise lucas lucia luciana lucy luis luka lukas luke lydia lynn \
madison magdalena maggie manuel marc marcel marco marcos marcus margaret margarita maria mariana marie marilyn marina mario \
marion marisol mark markus marta martha martin martina marvin mary mason mateo mathias matt matteo matthew maureen max \
maxim maximilian megan mehmet melanie melissa melvin mia michael michaela michele michelle miguel mikael mike mikhail \
milan mildred miriam mohamed mohammad mohammed monica morgan muhammad nadia nancy naomi natalia natalie nathan nathaniel \
neil nelson nicholas nicolas nicole nikita nikolai nils nina noah noel nora norma norman olga oliver olivia omar oscar \
owen pablo pamela paola patricia patrick paul paula pauline pavel pedro peggy per peter petra philip philippe phillip \
phyllis pierre pietro piotr preeti priya rachel rafael rahul raj rajesh ralph ramon randy raquel raul ray raymond rebecca \
regina renata rene ricardo richard rick rita rob robert roberta roberto robin rodrigo roger roland ronald rosa rose \
rosemary ross roy ruby russell ruth ryan sabine sabrina sally samantha samir samuel sandra santiago sara sarah sasha \
scott sean sebastian selena sergei sergey sergio seth shannon sharon shawn sheila shirley sidney silvia simon simone \
sofia sonia sophia sophie stacy stanley stefan stefano stella stephanie stephen steve steven susan suzanne sven sylvia \
tamara tammy tanya tara ted teresa terry thomas tiffany tim timothy tina todd tom tomas tommy tony tracy travis trevor \
tristan troy tyler ursula valentina valeria vanessa vera veronica vicente victor victoria vikram vincent viktor virginia \
vivian vladimir walter wanda warren wayne wei wendy wesley william willie wojciech xavier yan yasmin yolanda yuki yusuf \
yvonne zachary zoe zoran \
aditya akira amara anil anjali arash ayumi bao chen chloe deepak dong eun fang farah gaurav hao haruto hiroshi hui \
jia jiang jun kaito kavya keiko li lin ling mei min ming naveen neha ning pooja qiang rani ravi rohan sakura sanjay \
satoshi seo shreya siddharth sunil takashi tao usha vijay wang xiao xin yang yi ying yong yuan yuto zhang zhi \
leverett sighvatr rasmus leena mijail meagan teresa tamara judy\
";

/// Titles and honorifics that introduce a name.
pub(crate) const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "herr", "frau", "mme", "mlle", "sr", "sra", "senor",
    "senora",
];

/// Capitalised words that are given names but far more often something else.
pub(crate) const AMBIGUOUS: &[&str] = &[
    "will", "may", "june", "april", "august", "grace", "hope", "joy", "rose", "mark", "bill", "pat", "art", "max",
    "faith", "summer", "dawn", "sunny", "page", "ray", "lee", "dean", "jack", "john", "paris", "georgia", "victoria",
    "chase", "hunter", "iris", "lily", "ruby", "angel", "jesus", "king", "ken", "kim", "pen", "per", "jan", "tom",
    "don", "jay", "sky", "amber",
];
